from otter.test_files import test_case

OK_FORMAT = False

name = "q3"
points = 3

@test_case(points=None, hidden=False)
def test_matches_the_training_loss(hard_distillation_loss):
    import jax.numpy as jnp
    import numpy as np
    from mixer_ref.distill import hard_distillation_loss as reference
    from grading_support import call_learner, expect_close
    rng = np.random.default_rng(65)
    student = jnp.asarray(rng.normal(size=(4, 5)), jnp.float32)
    teacher = jnp.asarray(rng.normal(size=(4, 5)), jnp.float32)
    targets = jnp.eye(5)[jnp.asarray([0, 3, 3, 1])]
    want = reference(student, teacher, targets)
    call = 'hard_distillation_loss(student, teacher, one-hot targets), B=4, K=5'
    expect_close(call_learner(hard_distillation_loss, student, teacher, targets, what=call), want, call, atol=1e-05, meaning='a scalar', hint='Half the CE with the targets, half the CE with argmax of the teacher, averaged over the batch.')

