"""PyTorch side of the project: the DSen2-CR network, data, training, evaluation, export."""
