defmodule HordeC.Cluster do
  @moduledoc """
  Membership of replicated HordeC objects (`HordeC.Registry`, `HordeC.DynamicSupervisor`), with
  `Horde.Cluster`'s API.

  The members are the replicas `{name, hordec_node}` that replicate an object with each other;
  a supervisor's members also include the BEAM nodes running it, `{name, beam_node}` (the only
  ones that run its BEAM children). Membership is itself replicated data: setting it through any
  BEAM node's process sets it everywhere.
  """

  alias HordeC.Attachment

  @typedoc "A replica: `{name, hordec_node}`; a bare `name` means that name on every hordec node the local process uses."
  @type member :: {atom(), node()} | atom()

  @doc """
  Replaces the members of the object registered locally as `name` (a registry or a supervisor).

  Removing a member also removes the registrations of the BEAM nodes attached through it
  (as Horde does when a node leaves); for a supervisor, the children of a removed member are
  restarted on the remaining ones (and the removed member stops its copies). A bare `name`
  stands for `{name, h}` for every hordec node the local process uses: list a supervisor's BEAM
  members as `{name, node}`. Returns `:ok` once this node's reads (`members/1`) show the
  new membership; exits like any HordeC write when no hordec node answers within `timeout`.
  """
  @spec set_members(atom(), [member()], timeout()) :: :ok
  def set_members(name, members, timeout \\ 5_000) when is_atom(name) and is_list(members) do
    hordecs = Attachment.hordecs(name)

    full =
      members
      |> Enum.flat_map(fn
        {n, h} = m when is_atom(n) and is_atom(h) ->
          [m]

        n when is_atom(n) ->
          for h <- hordecs, do: {n, h}

        other ->
          raise ArgumentError,
                "expected members to be {name, node} or name, got: #{inspect(other)}"
      end)
      |> Enum.uniq()

    expected = Enum.sort(full)

    case Attachment.call(name, {:set_members, full}, timeout,
           where: {__MODULE__, :set_members, [name, members, timeout]},
           visible: fn -> Attachment.members(name) == expected end
         ) do
      :ok -> :ok
      {:error, reason} -> raise ArgumentError, "HordeC.Cluster.set_members/3: #{inspect(reason)}"
    end
  end

  @doc "The members of the object registered locally as `name`, sorted (read locally)."
  @spec members(atom()) :: [{atom(), node()}]
  def members(name) when is_atom(name), do: Attachment.members(name)
end
