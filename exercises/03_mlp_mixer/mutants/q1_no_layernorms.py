# Mistake: forgets the LayerNorms' scales and biases.
def mixer_param_count(config):
    c, s, n = config.hidden_dim, config.num_tokens, config.num_blocks
    d_s, d_c = config.tokens_mlp_dim, config.channels_mlp_dim
    stem = 3 * config.patch_size**2 * c + c
    block = (2 * s * d_s + s + d_s) + (2 * c * d_c + c + d_c)
    return stem + n * block + c * config.num_classes + config.num_classes
