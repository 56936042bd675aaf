"""Many machines: redaction jobs on Celery with RabbitMQ (README: Many machines).

The daemon host keeps intake, sweeps, live masking, the journal and everything recorded
(`dispatch.py`); `privmask worker` on any number of machines takes the jobs (`task.py`).
"""
