# Mistake: the ValueError does not say which size is wrong (the question asks it to).
def num_tokens(height, width, p):
    if height % p or width % p:
        raise ValueError("the patch size must divide the image size")
    return (height // p) * (width // p)
