from otter.test_files import test_case

OK_FORMAT = False

name = "q2"
points = 3

@test_case(points=None, hidden=False)
def test_sgd_steps_on_a_linear_model(train_step):
    import jax
    import jax.numpy as jnp
    import numpy as np
    import optax
    from grading_support import call_learner, expect_close

    def apply_fn(p, x):
        return x @ p['w'] + p['b']

    def reference(params, opt_state, x, y):

        def loss_fn(p):
            logits = apply_fn(p, x)
            return optax.softmax_cross_entropy_with_integer_labels(logits, y).mean()
        loss, grads = jax.value_and_grad(loss_fn)(params)
        updates, opt_state = tx.update(grads, opt_state, params)
        return (optax.apply_updates(params, updates), opt_state, loss)
    rng = np.random.default_rng(52)
    tx = optax.sgd(0.5, momentum=0.9)
    params = {'w': jnp.asarray(rng.normal(size=(6, 4)), jnp.float32), 'b': jnp.asarray(rng.normal(size=(4,)), jnp.float32)}
    mine, theirs = ((params, tx.init(params)), (params, tx.init(params)))
    for step in range(3):
        x = jnp.asarray(rng.normal(size=(8, 6)), jnp.float32)
        y = jnp.asarray(rng.integers(0, 4, size=8))
        call = f'train_step(...) at step {step} (linear model 6 -> 4, SGD lr 0.5 momentum 0.9)'
        got = call_learner(train_step, *mine, (x, y), apply_fn, tx, what=call)
        if not (isinstance(got, tuple) and len(got) == 3):
            raise AssertionError(f'{call} returned {type(got).__name__} {str(got)[:60]}; expected a tuple (new_params, new_opt_state, loss).')
        theirs = reference(*theirs[:2], x, y)
        expect_close(got[2], theirs[2], f'{call}: the loss', atol=1e-05, meaning='a scalar', hint='Mean softmax cross-entropy with integer labels, before the update.')
        for name in ('w', 'b'):
            expect_close(got[0][name], theirs[0][name], f'{call}: new params[{name!r}]', atol=1e-05, hint="Apply tx's updates with optax.apply_updates (the updates already carry the minus sign of descent).")
        mine = got[:2]

