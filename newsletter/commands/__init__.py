"""The CLI's commands, one module per stage they serve (cli.py registers them on ``newsletter``); each
parses, calls one library function, prints and exits."""
