"""TFP distributions: implicit reparameterization gradients and the TRIP prior."""

from tfbayes.distributions.implicit import implicit_reparameterization
from tfbayes.distributions.trip import TRIP
from tfbayes.distributions.gamma import Gamma
from tfbayes.distributions.beta import Beta
from tfbayes.distributions.dirichlet import Dirichlet
from tfbayes.distributions.von_mises_numerics import von_mises_cdf
from tfbayes.distributions.von_mises import VonMises
from tfbayes.distributions.implicit_cdf import ImplicitReparameterized
