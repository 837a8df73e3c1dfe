"""The runtime: tasks, the DAG scheduler, executors, sessions (and kernels)."""
