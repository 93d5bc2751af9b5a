from otter.test_files import test_case

OK_FORMAT = False

name = "q2"
points = 3

@test_case(points=None, hidden=False)
def test_sgd_steps_on_a_linear_model(train_step):
    import jax
    import jax.numpy as jnp
    import numpy as np
    from grading_support import call_learner, expect_close, in_learner_space
    source = "def apply_fn(p, x):\n    return x @ p['w'] + p['b']\n"
    namespace = {}
    exec(source, namespace)
    apply_fn = namespace['apply_fn']
    their_apply = in_learner_space('apply_fn', like=train_step, source=source)
    their_tx = in_learner_space('optax.sgd(0.5, momentum=0.9)', like=train_step)

    def reference(params, trace, x, y):
        """SGD with momentum 0.9 written out: trace = g + 0.9 trace; p = p - 0.5 trace."""

        def loss_fn(p):
            log_probs = jax.nn.log_softmax(apply_fn(p, x))
            return -jnp.take_along_axis(log_probs, y[:, None], axis=1).mean()
        loss, gradient = jax.value_and_grad(loss_fn)(params)
        trace = jax.tree.map(lambda t, g: g + 0.9 * t, trace, gradient)
        return (jax.tree.map(lambda p, t: p - 0.5 * t, params, trace), trace, loss)
    rng = np.random.default_rng(52)
    params = {'w': jnp.asarray(rng.normal(size=(6, 4)), jnp.float32), 'b': jnp.asarray(rng.normal(size=(4,)), jnp.float32)}
    zeros = jax.tree.map(jnp.zeros_like, params)
    mine, theirs = ((params, their_tx.init(params)), (params, zeros))
    for step in range(3):
        x = jnp.asarray(rng.normal(size=(8, 6)), jnp.float32)
        y = jnp.asarray(rng.integers(0, 4, size=8))
        call = f'train_step(...) at step {step} (linear model 6 -> 4, SGD lr 0.5 momentum 0.9)'
        theirs = reference(*theirs[:2], x, y)
        got = call_learner(train_step, *mine, (x, y), their_apply, their_tx, what=call)
        if not (isinstance(got, tuple | list) and len(got) == 3):
            raise AssertionError(f'{call} returned {type(got).__name__} {str(got)[:60]}; expected a tuple (new_params, new_opt_state, loss).')
        expect_close(got[2], theirs[2], f'{call}: the loss', atol=1e-05, meaning='a scalar', hint='Mean softmax cross-entropy with integer labels, before the update.')
        for name in ('w', 'b'):
            expect_close(got[0][name], theirs[0][name], f'{call}: new params[{name!r}]', atol=1e-05, hint="Apply tx's updates with optax.apply_updates (the updates already carry the minus sign of descent).")
        mine = (got[0], got[1])

