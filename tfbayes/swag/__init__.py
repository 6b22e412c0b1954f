"""Weight averaging and posteriors from SGD iterates: SWA, SWAG, FGE, mode-connecting curves,
and ``update_bn`` for the BatchNormalization statistics of new weights."""
from tfbayes.swag.bn import update_bn
