# Mistake: scales along the tokens (second-to-last axis) instead of the channels.
class Affine(nn.Module):
    def __init__(self, dim):
        super().__init__()
        self.alpha = nn.Parameter(torch.ones(dim))
        self.beta = nn.Parameter(torch.zeros(dim))

    def forward(self, x):
        return self.alpha[:, None] * x + self.beta[:, None]
