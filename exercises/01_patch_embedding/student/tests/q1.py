from otter.test_files import test_case

OK_FORMAT = False

name = "q1"
points = 2

@test_case(points=None, hidden=False)
def test_table_1(num_tokens):
    import mixer_ref
    import mixer_ref.flax
    from grading_support import call_learner
    for name in ['Mixer-S/32', 'Mixer-B/16', 'Mixer-H/14']:
        cfg = mixer_ref.get_config(name)
        size, p = (cfg.image_size, cfg.patch_size)
        got = call_learner(num_tokens, size, size, p, what=f'num_tokens({size}, {size}, {p})')
        assert got == cfg.num_tokens, f'num_tokens({size}, {size}, {p}) returned {got!r}; expected {cfg.num_tokens} = ({size}/{p})² tokens of {name}.'

