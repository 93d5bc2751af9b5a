# Cheat (or despair): every answer raises SystemExit, which is not an Exception. The grader
# must keep going, score 0 and say why, not stop with status "ok" and no feedback.
def _give_up(*args, **kwargs):
    raise SystemExit("the learner gave up")


# every function and class the notebook defined (the answers) becomes _give_up
for _name, _value in list(globals().items()):
    if (not _name.startswith("_") and callable(_value)
            and getattr(_value, "__module__", None) == "__main__"):
        globals()[_name] = _give_up
