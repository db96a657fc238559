from gpo_action.cli import run_process

run_process()
