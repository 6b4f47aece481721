"""Running a ReST experiment: the plan a config makes, the stage graph (setup, pretrain, grow, rank, mixture,
train, eval, export) with its fingerprinted, resumable stages, the model store, the config check, the run's
report and records, and opening a finished run folder."""
