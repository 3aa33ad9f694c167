import PotluckCommands

Potluck.main()
