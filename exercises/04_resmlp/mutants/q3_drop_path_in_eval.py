# Mistake: stochastic depth that stays on in evaluation mode (and was never asked for).
class ResMLPBlock(nn.Module):
    def __init__(self, num_tokens, dim, layerscale_init):
        super().__init__()
        self.norm1 = Affine(dim)
        self.linear_tokens = nn.Linear(num_tokens, num_tokens)
        self.gamma_1 = nn.Parameter(torch.full((dim,), layerscale_init))
        self.norm2 = Affine(dim)
        self.mlp = nn.Module()
        self.mlp.fc1 = nn.Linear(dim, 4 * dim)
        self.mlp.fc2 = nn.Linear(4 * dim, dim)
        self.gamma_2 = nn.Parameter(torch.full((dim,), layerscale_init))

    def forward(self, x):
        mixed = self.linear_tokens(self.norm1(x).transpose(1, 2)).transpose(1, 2)
        z = x + self.gamma_1 * mixed
        hidden = F.gelu(self.mlp.fc1(self.norm2(z)))
        keep = (torch.rand(x.shape[0], 1, 1) > 0.2).float() / 0.8  # on in eval mode too
        return z + keep * self.gamma_2 * self.mlp.fc2(hidden)
