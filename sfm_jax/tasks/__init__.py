"""What is learned: how clean patches become (input, target) on device, and the loss."""
