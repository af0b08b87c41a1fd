from callmeter.cli import main

main()
