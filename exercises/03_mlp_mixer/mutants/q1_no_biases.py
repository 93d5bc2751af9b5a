# Mistake: counts the weight matrices but forgets every bias.
def mixer_param_count(config):
    c, s, n = config.hidden_dim, config.num_tokens, config.num_blocks
    d_s, d_c = config.tokens_mlp_dim, config.channels_mlp_dim
    stem = 3 * config.patch_size**2 * c
    block = 2 * (2 * c) + 2 * s * d_s + 2 * c * d_c
    return stem + n * block + 2 * c + c * config.num_classes
