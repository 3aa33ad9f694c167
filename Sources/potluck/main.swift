import PotluckCommands

await Potluck.main()
