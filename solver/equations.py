r"""The vorticity equation on a spectral grid: its linear operator, its explicit terms and its solids.

    d omega / dt = L omega + N(omega) [ + Brinkman penalisation ],
    L = -nu |k|^2 - alpha                          (viscosity and linear drag, integrated exactly),
    N(omega) = -dealias * (u . grad omega - curl f) (advection and forcing, explicit),

with u = (d psi / dy, -d psi / dx) + (U, V), lap psi = -omega, (U, V) the mean flow that penalised
runs carry apart from the vorticity. :class:`VorticityEquation` holds the operators of one grid and
flow (on the backend's device, this rank's part of the spectrum), evaluates ``N`` (as the time
integrator wants it), the tendency of a field, and the implicit Brinkman step of the solids. The time
integrator (:mod:`solver.time_stepping`) and the step loop (:class:`solver.NavierStokes2D`) are apart;
the integrals of a field (energy, spectra, budgets) are functions in :mod:`solver.diagnostics`.
"""
from __future__ import annotations

import math

import numpy as np

from solver import boundaries, forcings, kernels
from solver.grid import SpectralGrid
from solver.time_stepping import phi_functions


class VorticityEquation:
    """The equation of one flow (a validated :class:`solver.physics.FlowSpec`, whose forcing and
    boundary may be arrays) on ``grid`` (a :class:`SpectralGrid` on ``backend``)."""

    def __init__(self, grid: SpectralGrid, backend, flow):
        self.grid = g = grid
        self.backend = be = backend
        self.flow = flow
        self.xp = xp = be.xp
        reynolds = float(flow.reynolds)
        self.nu = 0.0 if math.isinf(reynolds) else 1.0 / reynolds
        self.drag = float(flow.drag)
        cdt, rdt = be.complex_dtype, be.real_dtype

        # spectral operators on the device
        k2 = g.k2_np
        inv_k2 = np.where(k2 > 0, 1.0 / np.where(k2 > 0, k2, 1.0), 0.0)
        self.ikx = xp.asarray((1j * g.kx_d_np).astype(cdt))
        self.iky = xp.asarray((1j * g.ky_d_np).astype(cdt))
        self.inv_k2 = xp.asarray(inv_k2.astype(rdt))
        # psi = omega / k^2: u_hat = i ky psi_hat, v_hat = -i kx psi_hat
        self.u_from_w = xp.asarray((1j * g.ky_d_np * inv_k2).astype(cdt))
        self.v_from_w = xp.asarray((-1j * g.kx_d_np * inv_k2).astype(cdt))
        scale = 1.0 / (g.nx * g.ny)
        full = g.k2_np.shape
        # (u, v) hat = multipliers * omega hat, the 1/(nx ny) of the inverse FFT folded in
        self.velocity_multipliers = xp.asarray(np.stack([
            np.broadcast_to(1j * g.ky_d_np * inv_k2, full),
            np.broadcast_to(-1j * g.kx_d_np * inv_k2, full)]).astype(cdt) * scale)
        # Basdevant: u . grad omega = (d_xx - d_yy)(uv) + d_xy(v^2 - u^2), in Fourier space
        # (ky^2 - kx^2) FFT(uv) - kx ky FFT(v^2 - u^2) (real, stored complex: see ETDRK4Coefficients)
        self.uv_coefficient = xp.asarray(np.ascontiguousarray(np.broadcast_to(g.ky_np**2 - g.kx_np**2, full)).astype(cdt))
        self.shear_coefficient = xp.asarray(np.ascontiguousarray(np.broadcast_to(-g.kx_np * g.ky_np, full)).astype(cdt))
        self.parseval = xp.asarray(g.parseval_np.astype(rdt))
        self.linear = np.broadcast_to(-self.nu * k2 - self.drag, k2.shape)

        # forcing, as a vorticity source in spectral space
        xc, yc = g.computational_coordinates()
        if not flow.forced:
            curl_f = None
        elif isinstance(flow.forcing, str):
            _, curl_f = forcings.kolmogorov(yc, flow.forcing_wavenumber, flow.forcing_amplitude, free_slip=g.free_slip)
        else:
            curl_f = g.extend(np.asarray(flow.forcing, dtype=np.float64)[be.physical_slice[0]])
        self.forcing_hat = None if curl_f is None else be.forward(xp.asarray(curl_f.astype(rdt)))

        # penalisation: solid fraction, sponge, and the mean flow (not carried by the vorticity)
        kind = flow.boundary_kind
        self.mean_velocity = np.zeros(2)
        self.pressure_gradient = float(flow.pressure_gradient)
        self.mean_flow_free = kind == "channel"
        self.penalization = float(flow.penalization)
        self.solid_fraction = self.sponge = None
        self.sponge_eta = float(flow.sponge_eta)
        if flow.penalised:
            if kind == "mask":
                chi = np.asarray(flow.boundary, dtype=np.float64)[be.physical_slice[0]]
            else:
                chi = boundaries.build_mask(kind, xc, yc, g.dx, wall_thickness=flow.wall_thickness,
                                            center=flow.obstacle_center, size=flow.obstacle_size)
            if kind != "channel":
                self.sponge = boundaries.sponge_mask(xc, yc, flow.sponge_length, g.dx)
                self.mean_velocity = np.array([float(flow.inflow_velocity), 0.0])
            self.solid_fraction = chi

        # fused element-wise kernels (numba) on CPU backends: the numpy path's arithmetic in fewer passes
        self.kernels = "numba" if kernels.use_fused(xp) else "numpy"
        if self.kernels == "numba":
            # the velocity multipliers are i mu, i mv: the kernels take mu, mv
            self._fused = {"mu": kernels.real_coefficient(-1j * self.velocity_multipliers[0], rdt),
                           "mv": kernels.real_coefficient(-1j * self.velocity_multipliers[1], rdt),
                           "cu": kernels.real_coefficient(self.uv_coefficient, rdt),
                           "cs": kernels.real_coefficient(self.shear_coefficient, rdt),
                           "f": None if self.forcing_hat is None else kernels.flat(self.forcing_hat)}
        # the explicit terms are dealiased (the mask is folded into the ETDRK4 coefficients), so their
        # forward FFT needs only the columns (ky) up to the last one the mask keeps: the pyfftw backend
        # then skips the others' transforms along x (a third of that pass with the 2/3 rule)
        kept = np.flatnonzero(np.asarray(g.dealias_np).any(axis=0))
        self.dealias_columns = int(kept[-1]) + 1 if (len(kept) and not be.distributed) else None
        self.speed = 0.0  # max(|u|/dx + |v|/dy) of the last evaluation with record_speed

    # ------------------------------------------------------------------------------------------
    @classmethod
    def serial(cls, n: int, **solver_kwargs) -> "VorticityEquation":
        """The equation of ``NavierStokes2D(n, **solver_kwargs)`` on one process, numpy, float64: for
        the diagnostics of whole fields (the checks' budgets, spectra and tendencies)."""
        from solver.navier_stokes import NavierStokes2D
        kwargs = dict(solver_kwargs, backend="numpy", dtype="float64", comm=None)
        return NavierStokes2D(n, **kwargs).equation

    def spectral_of(self, field):
        """This rank's part of a field (user grid) -> its spectrum on the computational grid (no
        validation: ``NavierStokes2D.to_spectral`` validates)."""
        g = self.grid
        spec = self.backend.forward(g.extend(self.xp.asarray(field, dtype=self.backend.real_dtype)))
        return g.project_odd(spec) if g.free_slip else spec

    def physical_of(self, spec):
        """A spectrum on the computational grid -> this rank's part of the field on the user grid."""
        return self.grid.restrict(self.backend.backward(spec))

    def explicit(self, w_hat, record_speed: bool = False, out=None):
        """The explicit terms up to the factor -dealias folded into the ETDRK4 coefficients:
        returns FFT(u . grad omega) - curl f, so that N = -dealias * (that). ``record_speed``: keep
        max(|u|/dx + |v|/dy) over all ranks in ``self.speed`` (the CFL bound of the step to come).

        Basdevant's form: with div u = 0 and omega = v_x - u_y,
        u . grad omega = d_x(u omega) + d_y(v omega) = (d_xx - d_yy)(uv) + d_xy(v^2 - u^2),
        so the advection needs the inverse FFTs of u and v only and the forward FFTs of uv and
        v^2 - u^2 (4 transforms, each pair through one batched plan, instead of 4 inverse and 1 forward).
        Both forms are the same product on the dealiased modes (tested to round-off).
        """
        xp = self.xp
        be = self.backend
        if self.kernels == "numba":
            fused = self._explicit_fused(w_hat, record_speed, out)
            if fused is not None:
                return fused
        # in place, one ufunc pass per operation, into the FFT plans' own buffers
        stack = be.spectral_buffer((2,))
        xp.multiply(self.velocity_multipliers, w_hat, out=stack)
        phys = be.backward_unscaled(stack)
        u, v = phys[0], phys[1]
        u0, v0 = self.mean_velocity
        if u0:
            u += u0
        if v0:
            v += v0
        if record_speed:
            self.speed = self.speed_bound(u, v)
        products = be.real_buffer((2,))
        xp.multiply(u, v, out=products[0])
        xp.multiply(v, v, out=products[1])
        u *= u
        products[1] -= u
        spec = be.forward_view(products, columns=self.dealias_columns)
        uv_hat, shear_hat = spec[0], spec[1]
        if out is None:
            out = xp.empty(be.local_spectral_shape, dtype=be.complex_dtype)
        xp.multiply(self.uv_coefficient, uv_hat, out=out)
        shear_hat *= self.shear_coefficient
        out += shear_hat
        if self.forcing_hat is not None:
            out -= self.forcing_hat
        return out

    def _explicit_fused(self, w_hat, record_speed: bool, out):
        """``explicit`` in three compiled passes (velocity; products and speed; the combination), or
        None when an operand is not C-contiguous (a transform handing back strided views): the caller
        then runs the numpy path, which reads them as they are."""
        be = self.backend
        k = self._fused
        flat = kernels.flat
        if out is None:
            out = np.empty(be.local_spectral_shape, dtype=be.complex_dtype)
        stack = be.spectral_buffer((2,))
        w, o = flat(w_hat), flat(out)
        if w is None or o is None or flat(stack) is None:
            return None
        kernels.velocity(k["mu"], k["mv"], w, flat(stack[0]), flat(stack[1]))
        phys = be.backward_unscaled(stack)
        products = be.real_buffer((2,))
        u, v = flat(phys[0]), flat(phys[1])
        p0, p1 = flat(products[0]), flat(products[1])
        if u is None or v is None or p0 is None or p1 is None:
            return None
        # in the field's precision, as numpy's in-place add: a float64 scalar would widen a float32 kernel
        u0, v0 = (be.real_dtype.type(x) for x in self.mean_velocity)
        if record_speed:
            umax, vmax = kernels.products_and_speed(u, v, u0, v0, p0, p1)
            umax, vmax = be.allmax_array([umax, vmax])
            self.speed = umax / self.grid.dx + vmax / self.grid.dy
        else:
            kernels.products(u, v, u0, v0, p0, p1)
        spec = be.forward_view(products, columns=self.dealias_columns)
        uv_hat, shear_hat = flat(spec[0]), flat(spec[1])
        if uv_hat is None or shear_hat is None:
            return None
        if k["f"] is None:
            kernels.combine(k["cu"], k["cs"], uv_hat, shear_hat, o)
        else:
            kernels.combine_forced(k["cu"], k["cs"], uv_hat, shear_hat, k["f"], o)
        return out

    def tendency(self, w_hat):
        """The spectrum of d omega / dt: L omega + N(omega) (dealiased; the penalisation of solids,
        a step of its own, not included)."""
        xp = self.xp
        return xp.asarray(self.linear) * w_hat - xp.asarray(self.grid.dealias_np) * self.explicit(w_hat)

    def speed_bound(self, u, v) -> float:
        """max|u| / dx + max|v| / dy over all ranks (CFL number = dt times this)."""
        xp = self.xp
        # max |u| as max(max u, -min u): two reductions, no temporary array
        umax, vmax = self.backend.allmax_array([max(float(xp.max(u)), -float(xp.min(u))),
                                                max(float(xp.max(v)), -float(xp.min(v)))])
        return umax / self.grid.dx + vmax / self.grid.dy

    def velocity_fluctuation(self, w_hat):
        """(u, v) - (U, V) on the computational grid, from the vorticity spectrum."""
        uv = self.backend.backward(self.xp.stack([self.u_from_w * w_hat, self.v_from_w * w_hat]))
        return uv[0], uv[1]

    # ---- solids: the Brinkman term and the mean flow ------------------------------------------
    def penalise(self, w_hat, h: float):
        """Implicit Brinkman step u <- (u + h chi/eta u_s) / (1 + h chi/eta), then omega = curl u.

        Solids have u_s = 0; the sponge relaxes towards the free stream (U, 0).
        """
        xp = self.xp
        u0, v0 = self.mean_velocity
        u, v = self.velocity_fluctuation(w_hat)
        u, v = u + u0, v + v0
        rate = (h / self.penalization) * self.solid_fraction
        target_u = 0.0
        if self.sponge is not None:
            s = (h / self.sponge_eta) * self.sponge
            target_u = s * u0
            rate = rate + s
        denom = 1.0 / (1.0 + rate)
        u = (u + target_u) * denom
        v = v * denom
        uv_hat = self.backend.forward(xp.stack([u, v]))
        if self.mean_flow_free:
            # the k = 0 mode of the penalised velocity is the new mean flow
            n_total = self.grid.nx * self.grid.ny
            means = np.zeros(2)
            if self.backend.spectral_slice[0].start == 0 and self.backend.spectral_slice[1].start == 0:
                means = self.backend.to_numpy(uv_hat[:, 0, 0].real) / n_total
            self.mean_velocity = self.backend.allsum_array(np.asarray(means, dtype=np.float64))
        return self.ikx * uv_hat[1] - self.iky * uv_hat[0]

    def advance_mean_flow(self, h: float) -> None:
        """dU/dt = G - alpha U (pressure-gradient-driven channel), exactly over a step."""
        if not self.mean_flow_free:
            return
        z = -self.drag * h
        phi1 = float(phi_functions(np.array([z]))[0][0])
        u0 = self.mean_velocity[0] * math.exp(z) + h * phi1 * self.pressure_gradient
        self.mean_velocity = np.array([u0, self.mean_velocity[1] * math.exp(z)])
