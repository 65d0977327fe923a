"""The keeper: one small process per daemon root that lets containers outlive berthd.

Containers are started with `crun create` + `crun start`: `crun create` forks the
container's init and exits, so the init is reparented to the nearest child subreaper
among its ancestors. The keeper is that subreaper (PR_SET_CHILD_SUBREAPER) and the parent
of every `crun create` (berthd asks it to spawn them), so every container init becomes
its child. It then only

* reaps: records each init's exit status (as the shell reports it: the exit code, or
  128+N for signal N) and time, and tells every connected client;
* holds: duplicates of each container's stdio pipe ends (the read ends of stdout and
  stderr, the write end of stdin, a pty master), handed over with SCM_RIGHTS. While
  berthd is away the pipes stay open: output waits in them (a container that fills its
  pipe blocks, as with a slow reader; nothing is lost) and a new berthd takes them back.

It keeps its state in memory only: it never restarts while containers live, and exits
only when asked (or on SIGTERM) while holding no live container. It is started by the
first berthd that finds none (`Keeper.connect`), in a session of its own, and is not a
child anyone waits for. Standard library only and single-threaded, to stay small.

* `engine.keeper.__main__`: the keeper process (`python -m engine.keeper --state DIR`).
* `engine.keeper.server`: its state and poll loop.
* `engine.keeper.protocol`: the wire format both sides share.
* `engine.keeper.client`: the trio client berthd uses (`Keeper`).
"""
