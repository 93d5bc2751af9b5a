from otter.test_files import test_case

OK_FORMAT = False

name = "q2"
points = 2

@test_case(points=None, hidden=False)
def test_paper_depths(layerscale_init):
    import math
    import mixer_ref
    from grading_support import call_learner
    for name in ['resmlp_s12', 'resmlp_s24', 'resmlp_s36']:
        cfg = mixer_ref.get_config(name)
        got = call_learner(layerscale_init, cfg.num_blocks, what=f'layerscale_init({cfg.num_blocks})')
        try:
            value = float(got)
        except (TypeError, ValueError):
            value = None
        assert value is not None and math.isclose(value, cfg.layerscale_init, rel_tol=1e-09), f'layerscale_init({cfg.num_blocks}) returned {got!r}; expected {cfg.layerscale_init:g}, the value of {name}.'

