"""Measured metric directions per phase: written by ``benchmarks/proxy_lab.py --write-evidence``, not by hand.

``MEASURED[metric][phase] = (direction, tau, n, lab, stable)``: on the lab's ground-truth table, the
direction in which the metric ranks trained accuracy (oriented Kendall tau >= 0), with n configs; ``stable``
says whether the sign agreed across labs (None: one lab). The registry exposes them as
``registry.get(name).measured``; the paper's direction stays ``registry.get(name).hypothesis``.
"""

# python benchmarks/proxy_lab.py --table benchmarks/tables/resnet_mnist5k.csv.gz --write-evidence objectives/evidence.py --lab resnet_mnist5k
# python benchmarks/proxy_lab.py --table benchmarks/tables/resnet_mnist5k.csv.gz --write-evidence objectives/evidence.py --lab resnet_mnist5k --other-lab benchmarks/tables/nb201_lab.csv.gz
MEASURED: dict[str, dict[str, tuple[str, float, int, str, bool | None]]] = {
    'az_expressivity': {
        'init': ('maximize', 0.314, 150, 'resnet_mnist5k', True),
        'early': ('maximize', 0.419, 150, 'resnet_mnist5k', None),
    },
    'az_progressivity': {
        'init': ('minimize', 0.198, 150, 'resnet_mnist5k', False),
        'early': ('minimize', 0.243, 150, 'resnet_mnist5k', None),
    },
    'az_trainability': {
        'init': ('maximize', 0.133, 150, 'resnet_mnist5k', True),
        'early': ('maximize', 0.279, 150, 'resnet_mnist5k', None),
    },
    'coherence': {
        'init': ('minimize', 0.127, 150, 'resnet_mnist5k', False),
        'early': ('maximize', 0.258, 150, 'resnet_mnist5k', None),
    },
    'confusion': {
        'init': ('minimize', 0.109, 150, 'resnet_mnist5k', True),
        'early': ('maximize', 0.151, 150, 'resnet_mnist5k', None),
    },
    'diversity': {
        'init': ('maximize', 0.135, 150, 'resnet_mnist5k', True),
        'early': ('minimize', 0.228, 150, 'resnet_mnist5k', None),
    },
    'fisher': {
        'init': ('maximize', 0.205, 150, 'resnet_mnist5k', None),
        'early': ('maximize', 0.391, 150, 'resnet_mnist5k', None),
    },
    'flops': {
        'init': ('maximize', 0.199, 150, 'resnet_mnist5k', True),
        'early': ('maximize', 0.231, 150, 'resnet_mnist5k', None),
    },
    'grad_depth_trend': {
        'init': ('minimize', 0.196, 150, 'resnet_mnist5k', True),
        'early': ('minimize', 0.393, 150, 'resnet_mnist5k', None),
    },
    'grad_norm': {
        'init': ('minimize', 0.107, 150, 'resnet_mnist5k', False),
        'early': ('minimize', 0.165, 150, 'resnet_mnist5k', None),
    },
    'grad_norm_cv': {
        'init': ('minimize', 0.176, 150, 'resnet_mnist5k', True),
        'early': ('maximize', 0.549, 150, 'resnet_mnist5k', None),
    },
    'grad_weight_ratio': {
        'init': ('maximize', 0.143, 150, 'resnet_mnist5k', True),
        'early': ('minimize', 0.143, 150, 'resnet_mnist5k', None),
    },
    'grasp': {
        'init': ('maximize', 0.311, 150, 'resnet_mnist5k', None),
        'early': ('maximize', 0.341, 150, 'resnet_mnist5k', None),
    },
    'jacob_cov': {
        'init': ('maximize', 0.235, 150, 'resnet_mnist5k', None),
        'early': ('minimize', 0.22, 150, 'resnet_mnist5k', None),
    },
    'kappa_w': {
        'init': ('maximize', 0.243, 150, 'resnet_mnist5k', True),
        'early': ('maximize', 0.416, 150, 'resnet_mnist5k', None),
    },
    'kappa_x': {
        'init': ('maximize', 0.291, 150, 'resnet_mnist5k', True),
        'early': ('maximize', 0.32, 150, 'resnet_mnist5k', None),
    },
    'meco': {
        'init': ('maximize', 0.197, 150, 'resnet_mnist5k', True),
        'early': ('maximize', 0.154, 150, 'resnet_mnist5k', None),
    },
    'min_cosine': {
        'init': ('minimize', 0.198, 150, 'resnet_mnist5k', True),
        'early': ('minimize', 0.307, 150, 'resnet_mnist5k', None),
    },
    'naswot': {
        'init': ('maximize', 0.266, 150, 'resnet_mnist5k', True),
        'early': ('maximize', 0.383, 150, 'resnet_mnist5k', None),
    },
    'params': {
        'init': ('maximize', 0.206, 150, 'resnet_mnist5k', True),
        'early': ('maximize', 0.239, 150, 'resnet_mnist5k', None),
    },
    'rank_input': {
        'init': ('maximize', 0.144, 150, 'resnet_mnist5k', True),
        'early': ('maximize', 0.161, 150, 'resnet_mnist5k', None),
    },
    'rank_weight': {
        'init': ('maximize', 0.187, 150, 'resnet_mnist5k', True),
        'early': ('minimize', 0.391, 150, 'resnet_mnist5k', None),
    },
    'sgn_berry_esseen': {
        'init': ('minimize', 0.166, 150, 'resnet_mnist5k', True),
        'early': ('maximize', 0.559, 150, 'resnet_mnist5k', None),
    },
    'sgn_gaussianity': {
        'init': ('maximize', 0.295, 150, 'resnet_mnist5k', True),
        'early': ('minimize', 0.434, 150, 'resnet_mnist5k', None),
    },
    'snip': {
        'init': ('maximize', 0.15, 150, 'resnet_mnist5k', True),
        'early': ('maximize', 0.192, 150, 'resnet_mnist5k', None),
    },
    'spectrum_ks': {
        'init': ('maximize', 0.169, 150, 'resnet_mnist5k', False),
        'early': ('maximize', 0.382, 150, 'resnet_mnist5k', None),
    },
    'spectrum_s': {
        'init': ('minimize', 0.177, 150, 'resnet_mnist5k', True),
        'early': ('maximize', 0.518, 150, 'resnet_mnist5k', None),
    },
    'synflow': {
        'init': ('maximize', 0.233, 150, 'resnet_mnist5k', True),
        'early': ('maximize', 0.245, 150, 'resnet_mnist5k', None),
    },
    'weight_coherence': {
        'init': ('minimize', 0.171, 150, 'resnet_mnist5k', True),
        'early': ('minimize', 0.32, 150, 'resnet_mnist5k', None),
    },
    'weight_diversity': {
        'init': ('maximize', 0.184, 150, 'resnet_mnist5k', True),
        'early': ('maximize', 0.332, 150, 'resnet_mnist5k', None),
    },
    'zico': {
        'init': ('maximize', 0.261, 150, 'resnet_mnist5k', None),
        'early': ('maximize', 0.325, 150, 'resnet_mnist5k', None),
    },
}
