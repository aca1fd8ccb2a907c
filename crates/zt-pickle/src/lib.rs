//! Reader for PyTorch checkpoints (.pt/.pth/.bin): zip and legacy torch.save, through a restricted pickle machine that never runs code
