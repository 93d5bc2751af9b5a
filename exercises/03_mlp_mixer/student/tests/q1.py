from otter.test_files import test_case

OK_FORMAT = False

name = "q1"
points = 3

@test_case(points=None, hidden=False)
def test_official_counts(mixer_param_count):
    import mixer_ref
    from grading_support import call_learner
    official = {'Mixer-B/16': 59880472, 'Mixer-B/32': 60293428, 'Mixer-L/16': 208196168}
    for name, want in official.items():
        got = call_learner(mixer_param_count, mixer_ref.get_config(name), what=f'mixer_param_count({name})')
        assert got == want, f"mixer_param_count(get_config({name!r})) returned {got!r}; expected {want:,} (the official code's count, with a 1000-class head). Off by {got - want:+,}: compare with C = {mixer_ref.get_config(name).hidden_dim} (LayerNorms, biases?)."

