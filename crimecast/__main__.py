from crimecast.cli import main

main()
