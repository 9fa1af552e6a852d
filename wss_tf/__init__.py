"""PseudoSeg (Zou et al., ICLR 2021) on TensorFlow 2 / Keras 3: data, pseudo labels, training, evaluation."""
