# Mistake: floor division everywhere, so an image that P does not divide is silently cropped.
def num_tokens(height, width, p):
    return (height // p) * (width // p)
