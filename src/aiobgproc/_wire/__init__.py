"""What aiobgproc's processes say to each other: every protocol, in one place.

**Manager and executor** (``frames``; read by ``channel`` on the manager's side, parsed by
``messages``): a socket pair, each frame a 4-byte big-endian length and a marshal tuple.

    manager -> executor   ("job", job) to a spawned executor; ("go",) to one forked with
                          its job; ("run", changed_env, removed_env, cwd, job) to one forked
                          without it. Sent only once the executor's pid is recorded.
                          ("ack",) after each step's "done" but the last (the executor
                          then exits by itself); ("exit",) to stop at once.
                          ("next", changed_env, removed_env, cwd, job) with two SCM_RIGHTS
                          fds (the new run's stdout and stderr pipes) to a reused executor
                          that said "idle".
    executor -> manager   ("start", index, name) for every step but the first (the manager
                          recorded that one with the pid); ("progress", fraction, message);
                          ("done", index, name, output) or ("interrupt", index, name,
                          output), output being marshal bytes of the step's dict;
                          ("error", index, name, type, message, traceback).
                          ("idle",) after a job marked "reuse": its pipes are let go of.

    job = {"process_id", "attempt", "sys_path", "steps": [{"name", "target", "args",
           "kwargs", "interrupt"}], "start": step index, "input": dict,
           "reuse": bool (optional)}

**Manager and warm executor** (``_os.zygote`` and ``_child.zygote``): a SOCK_SEQPACKET
socket, each message one marshal tuple.

    zygote -> manager     ("ready", pid, environ) once; ("forked", request, pid,
                          clock_before_ns, clock_after_ns) for each fork; ("exit", pid,
                          status) when a child ends; ("warning", text).
    manager -> zygote     ("fork", request, changed_env, removed_env, cwd, job) with three
                          SCM_RIGHTS fds: the write ends of the stdout and stderr pipes and
                          the executor's end of its channel (env, cwd and job are None
                          when they would not fit one message: they then follow on the
                          channel in a "run" frame).

**Manager and guard** (``_os.guard`` and ``_child.guard``): the guard's stdin, one text line
each: ``watch PID CREATE_TIME TAG`` for every child, ``forget PID`` when it is gone. EOF (the
manager closed it, or died) makes the guard stop the tree of every child still watched.
"""
