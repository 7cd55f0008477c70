defmodule HordeC.DynamicSupervisor.Member do
  @moduledoc """
  A member of a `HordeC.DynamicSupervisor`, as the distribution strategies see it (the shape of
  `Horde.DynamicSupervisor.Member`, plus the kind of children it can run).

    * `name` – `{supervisor_name, node}`;
    * `status` – `:alive`, `:shutting_down`, `:dead`, or `:uninitialized` (listed, no status yet);
    * `kind` – `:c` (a replica on a hordec node: runs C workers), `:beam` (a BEAM node running
      `HordeC.DynamicSupervisor`: runs BEAM children), or `nil` while unknown;
    * `types` – the C worker types a replica can run (binaries; `[]` for BEAM members).
  """

  @enforce_keys [:name, :status]
  defstruct [:name, :status, kind: nil, types: []]

  @type status :: :alive | :shutting_down | :dead | :uninitialized
  @type t :: %__MODULE__{
          name: {atom(), node()},
          status: status(),
          kind: :c | :beam | nil,
          types: [binary()]
        }
end
