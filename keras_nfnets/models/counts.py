"""Parameters and FLOPs of every public variant, stored so that ``nfnets models`` and the README's
table need no model build and no TensorFlow. ``tests/models/test_models.py`` rebuilds every variant and
checks each row (``python tools/write_counts.py`` prints the rows anew).

Each row: ``builder: (parameters, FLOPs)`` of the model with its 1000-class classifier, FLOPs as
multiply-adds for one image at the variant's test size (:func:`~keras_nfnets.models.count_flops`).
"""

COUNTS = {
    "NFResNet14": (10064940, 1468792832),
    "NFResNet26": (15995184, 2342256640),
    "NFResNet50": (25557048, 4089184256),
    "NFResNet101": (44549193, 7801405440),
    "NFResNet152": (60192858, 11513626624),
    "NFResNet200": (64673898, 15007481856),
    "NFResNet288": (146460552, 21558460416),
    "NFRegNetB0": (8595372, 443672488),
    "NFRegNetB1": (10019208, 733522624),
    "NFRegNetB2": (13785904, 1145075772),
    "NFRegNetB3": (18136667, 1999206624),
    "NFRegNetB4": (29315830, 4467269888),
    "NFRegNetB5": (48707138, 11097831488),
    "NFRegNetB6": (70045805, 20136927784),
    "NFRegNetB7": (101743204, 38161054592),
    "NFRegNetB8": (142314441, 63719342484),
    "NFNetF0": (71489284, 12384198656),
    "NFNetF1": (132634256, 35538968576),
    "NFNetF2": (193779228, 62592978944),
    "NFNetF3": (254924200, 114763501568),
    "NFNetF4": (316069172, 215241187328),
    "NFNetF5": (377214144, 289757106176),
    "NFNetF6": (438359116, 377280307200),
    "NFNetF7": (499504088, 478781640704),
    "NFNetL0": (35074488, 7025301504),
    "ECANFNetL0": (24143924, 7014465280),
    "ECANFNetL1": (41407728, 14730391040),
    "ECANFNetL2": (56722348, 29781742848),
    "ECANFNetL3": (72036968, 52201667584),
}
