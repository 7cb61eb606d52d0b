"""One module per Processing algorithm; each turns parameters into one call of ``core``."""

from .cloud_mask import CloudMaskAlgorithm
from .composite import CompositeAlgorithm
from .evaluate import EvaluateAlgorithm
from .import_keras import ImportKerasAlgorithm
from .remove_clouds import RemoveCloudsAlgorithm

ALGORITHMS = [RemoveCloudsAlgorithm, CloudMaskAlgorithm, EvaluateAlgorithm, CompositeAlgorithm, ImportKerasAlgorithm]
