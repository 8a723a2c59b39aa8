"""Several gateway processes on one Redis act as one, and a node's death loses nothing (issue 7).

Every gateway here is a real ``python -m streamgate serve`` process with
``STREAMGATE_BROKER=redis``, a key prefix of the test's own and a shared data directory
(producer key, bearer secret, API keys). Each process writes its output to files in
``tmp_path``; every wait is bounded; teardown stops only the processes the test started
(terminate, then kill) and deletes the prefix's keys. The shared Redis on 127.0.0.1:6379 is
never restarted or flushed: the restart tests run a redis-server of their own.
"""
