"""The options the layers accept, as plain data (no Keras import): configs validate against
these without building anything, and the ``nfnets`` command line lists models without loading
TensorFlow."""

# DeepMind's empirical γ per nonlinearity (nfnets/base.py `nonlinearities`; paper §4.3, App. D.1).
GAMMA = {
    "identity": 1.0,
    "celu": 1.270926833152771,
    "elu": 1.2716004848480225,
    "gelu": 1.7015043497085571,
    "gelu_exact": 1.7015043497085571,  # timm's dm_nfnet uses erf-GELU with the same constant
    "glu": 1.8484294414520264,
    "leaky_relu": 1.70590341091156,
    "log_sigmoid": 1.9193484783172607,
    "log_softmax": 1.0002083778381348,
    "relu": 1.7139588594436646,
    "relu6": 1.7131484746932983,
    "selu": 1.0008515119552612,
    "sigmoid": 4.803835391998291,
    "silu": 1.7881293296813965,
    "soft_sign": 2.338853120803833,
    "softplus": 1.9203323125839233,
    "tanh": 1.5939117670059204,
}

# Which GELU each name means: "gelu" is the tanh approximation 0.5·x·(1 + tanh(√(2/π)(x + 0.044715x³)))
# (JAX's default, which DeepMind trained with); "gelu_exact" the erf form (timm's, PyTorch's default).
GELU_TANH_APPROXIMATION = {"gelu": True, "gelu_exact": False}

# Activations that keep the shape of their input, usable inside the residual networks.
ELEMENTWISE_ACTIVATIONS = tuple(name for name in GAMMA if name not in ("glu", "log_softmax"))

# ScaledWSConv2D: padding rules and how the stabiliser eps enters the kernel's variance.
PADDINGS = ("same", "valid", "symmetric")
EPS_MODES = ("floor", "add")
