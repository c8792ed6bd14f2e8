"""Running a comparison: one worker process per engine run, and what surrounds it.

:mod:`.selection` (the registry, and which engine runs a comparison holds, decided once), :mod:`.runner`
(``run(spec, out) -> Results``: the plan, the workers one at a time, the machine's peaks, the results),
:mod:`.worker` (one engine run in its own process, checked), :mod:`.stopping` (Ctrl-C and SIGTERM),
:mod:`.resume` (reusing finished runs), :mod:`.progress` (what the terminal shows), :mod:`.fingerprint`
and :mod:`.peaks` (the machine, measured after the engines).
"""
