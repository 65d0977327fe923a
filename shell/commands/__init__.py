"""What each `berth` command does, a module per noun, each verb's grammar (Command, Opt,
Arg) beside the function that runs it: containers (with container_options, what the
`run`/`create` options mean), images, files (cp, diff, commit, export, import, save,
load), volumes, networks, plugins, system (plain inspect, events, version, info, df,
prune). printers holds what every noun prints alike: listings, inspect output, per-name
errors, prune reports.

A handler takes the client and the parsed arguments and returns the exit status; the
same handlers serve the one-shot CLI and the REPL. shell/cli.py assembles the table.
"""
