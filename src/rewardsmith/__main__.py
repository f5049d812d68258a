from rewardsmith.cli import entry

entry()
