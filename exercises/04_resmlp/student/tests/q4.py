from otter.test_files import test_case

OK_FORMAT = False

name = "q4"
points = 3

@test_case(points=None, hidden=False)
def test_matches_mixer_ref_fold_affine(fold_affine_into_linear):
    import mixer_ref
    import mixer_ref.torch
    import torch
    from grading_support import call_learner, expect_close
    model = mixer_ref.create_model('resmlp_tiny', framework='torch').eval()
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(p + 0.1 * torch.randn(p.shape, generator=generator))
    folded = mixer_ref.fold_affine(model)
    block, want = (model.blocks[0], folded.blocks[0].mlp.fc1)
    args = [t.detach().clone() for t in (block.norm2.alpha, block.norm2.beta, block.mlp.fc1.weight, block.mlp.fc1.bias)]
    call = 'fold_affine_into_linear(norm2.alpha, norm2.beta, fc1.weight, fc1.bias)'
    got = call_learner(fold_affine_into_linear, *args, what=call)
    assert isinstance(got, tuple | list) and len(got) == 2, f'{call} returned {type(got).__name__}; expected a pair (weight, bias).'
    expect_close(got[0], want.weight, f'{call}[0], the weight', atol=1e-05, meaning='(out, in) = (256, 64)', hint='alpha scales the inputs, i.e. the columns of the (out, in) weight.')
    expect_close(got[1], want.bias, f'{call}[1], the bias', atol=1e-05, meaning='(out,)', hint='beta passes through the weight: weight @ beta + bias.')

