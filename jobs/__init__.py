"""The job layer: how any queued work (a photo's estimate, a training run, a dataset import,
a model export) is enqueued, claimed, failed and swept, so that none is lost when a worker or
the broker dies. ``jobs.lifecycle`` tells the whole story; ``jobs.models.Job`` holds the state.
"""
