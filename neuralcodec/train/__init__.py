"""Training: Lightning modules, losses, discriminators, data modules and the Hydra entry point."""
