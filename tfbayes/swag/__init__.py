"""Weight averaging and posteriors from SGD iterates: SWA, SWAG, FGE, mode-connecting curves,
and ``update_bn`` for the BatchNormalization statistics of new weights."""

from tfbayes.swag.bn import update_bn
from tfbayes.swag.fge import FGE, fge_learning_rate
from tfbayes.swag.curves import Curve, curve_coefficients, evaluate_curve, fit_curve
from tfbayes.swag.flat import FlatWeights
from tfbayes.swag.moments import RunningMoments
from tfbayes.swag.swa import SWA, swa_learning_rate
from tfbayes.swag.swag import SWAG, SWAGDiag
from tfbayes.swag.averaging import average_predictions
