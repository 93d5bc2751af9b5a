# Mistake: true division returns a float, and HW/P² hides which side P does not divide.
def num_tokens(height, width, p):
    s = height * width / p**2
    if s != int(s):
        raise ValueError(f"patch size {p} must divide the image size, got {height}x{width}")
    return s
