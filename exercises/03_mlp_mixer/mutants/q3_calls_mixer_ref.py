# Mistake: rebuilds a mixer_ref model and loads the parameters into it.
import mixer_ref
import mixer_ref.flax
from flax import nnx


def mixer_forward(images, params):
    kernel = params["stem"]["proj"]["kernel"]
    cfg = mixer_ref.get_config(
        "mixer_tiny", patch_size=kernel.shape[0], image_size=images.shape[1],
        hidden_dim=kernel.shape[-1], num_blocks=len(params["blocks"]),
        tokens_mlp_dim=params["blocks"][0]["token_mixing"]["fc1"]["kernel"].shape[1],
        channels_mlp_dim=params["blocks"][0]["channel_mixing"]["fc1"]["kernel"].shape[1],
        num_classes=params["head"]["bias"].shape[0])
    model = mixer_ref.flax.MlpMixer(cfg, rngs=nnx.Rngs(0))
    state = nnx.state(model, nnx.Param)
    nnx.replace_by_pure_dict(state, params)
    nnx.update(model, state)
    return model(jnp.asarray(images))
