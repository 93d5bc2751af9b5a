# Mistake: builds the model and counts its parameters instead of using a formula.
import mixer_ref
import mixer_ref.models
from flax import nnx


def mixer_param_count(config):
    return mixer_ref.count_params(nnx.eval_shape(lambda: mixer_ref.models.build(config)))
