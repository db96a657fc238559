from gpo_action.cli import main

main()
