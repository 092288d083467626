"""The manager's side of OS processes: spawning children (``spawn``), the exit of a child
watched through its pidfd (``pidfd.PidfdProcess``), a run's whole tree found and stopped
(``tree``), telling a process from a later one with its pid (``pidtime``), this host's
identity (``host``), the clients of the warm executor (``zygote``) and of the guard
(``guard``), and the command lines that start our own child processes (``boot``).

Nothing here knows steps or stores. The code that runs *in* those children is in
``aiobgproc._child``; what they say to each other is in ``aiobgproc._wire``.
"""
