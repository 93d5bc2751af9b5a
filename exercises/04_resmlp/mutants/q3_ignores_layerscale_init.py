# Mistake: ignores the layerscale_init argument and always starts LayerScale at 0.1.
class ResMLPBlock(nn.Module):
    def __init__(self, num_tokens, dim, layerscale_init):
        super().__init__()
        layerscale_init = 0.1
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
        return z + self.gamma_2 * self.mlp.fc2(hidden)
