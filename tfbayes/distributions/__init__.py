"""TFP distributions: implicit reparameterization gradients and the TRIP prior."""
from tfbayes.distributions.implicit import implicit_reparameterization
from tfbayes.distributions.trip import TRIP
from tfbayes.distributions.gamma import Gamma
from tfbayes.distributions.beta import Beta
from tfbayes.distributions.dirichlet import Dirichlet
