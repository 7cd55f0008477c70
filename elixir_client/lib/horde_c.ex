defmodule HordeC do
  @moduledoc """
  Elixir client for HordeC: Horde's distributed `Registry` and `DynamicSupervisor`,
  implemented in a C node (`hordec`) that joins the cluster as a *hidden* Erlang
  distribution peer.

  A `hordec` node never shows up in `Node.list/0` (only in `Node.list(:hidden)` and
  `Node.list(:connected)`), so membership is always explicit: you name the C nodes you
  talk to.

  Modules:

    * `HordeC.Node` – talk to the `hordec` control process of a C node (ping, info, echo).

  Planned (mirroring Horde's API, so migrating is an alias change):
  `HordeC.Registry`, `HordeC.DynamicSupervisor`, `HordeC.Cluster`, `HordeC.Crdt`.
  """

  @typedoc "The node name of a running `hordec` C node, e.g. `:\"h1@127.0.0.1\"`."
  @type c_node :: node()

  @typedoc "Why a request to a C node failed."
  @type error_reason :: :noconnection | :noproc | :timeout | term()
end
