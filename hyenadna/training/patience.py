"""When a classifier's epochs start to count against early stopping's patience (torch-free: the CLI reads it).

From random weights a classifier can sit at chance for epochs before it learns, and stopping it there keeps a model
that learnt nothing. "above chance": count from the first epoch whose validation MCC beats 0; on 100 validation rows
a model still at chance scores 0.1-0.2 now and then, which starts the count early. "training loss": count from the
first epoch whose training loss is 5% below the first epoch's, a signal that noise in the validation split cannot
fake.
"""

PATIENCE_FROM_VALIDATION, PATIENCE_FROM_LOSS = "above chance", "training loss"
PATIENCE_FROM = (PATIENCE_FROM_VALIDATION, PATIENCE_FROM_LOSS)
LEFT_CHANCE = 0.95  # the fraction of the first epoch's training loss below which a model has left chance
