defmodule HordeC.DistributionStrategy do
  @moduledoc """
  How `HordeC.DynamicSupervisor` places children on members: the value of its
  `distribution_strategy:` option.

  Placement itself runs in the `hordec` replicas (docs/supervisor.md §3): a strategy module names
  the rule the replicas apply (`wire_name/0`), and implements the same rule in Elixir, with
  `Horde.DistributionStrategy`'s callbacks, so that a BEAM node can answer `has_quorum?/1` locally
  (`HordeC.DynamicSupervisor.wait_for_quorum/2`) and tests can predict placement.

  The three strategies are `HordeC.UniformDistribution` (the default),
  `HordeC.UniformQuorumDistribution` and `HordeC.UniformRandomDistribution`.
  """

  alias HordeC.DynamicSupervisor.Member

  @doc "The member that runs the child (`child_spec` or its placement hash), among `members`."
  @callback choose_node(child_spec :: map() | non_neg_integer(), members :: [Member.t()]) ::
              {:ok, Member.t()} | {:error, :no_alive_nodes | :quorum_not_met}

  @doc "Whether `members` have quorum (children may be started and kept running)."
  @callback has_quorum?(members :: [Member.t()]) :: boolean()

  @doc "The name of the rule in the replicas' options: `:uniform`, `:quorum` or `:random`."
  @callback wire_name() :: :uniform | :quorum | :random

  @doc false
  # The placement identifier of a child spec, as Horde.UniformDistribution computes it (27 bits).
  @spec identifier(map() | non_neg_integer()) :: non_neg_integer()
  def identifier(hash) when is_integer(hash) and hash >= 0, do: hash
  def identifier(%{} = spec), do: :erlang.phash2(Map.delete(spec, :id))

  @doc false
  # The alive members, deduplicated by name, in Erlang term order of their names.
  @spec alive([Member.t()]) :: [Member.t()]
  def alive(members) do
    members
    |> Enum.filter(&(&1.status == :alive))
    |> Map.new(&{&1.name, &1})
    |> Map.values()
    |> Enum.sort_by(& &1.name)
  end
end

defmodule HordeC.HashRing do
  @moduledoc """
  libring 1.7.0's consistent hash ring (`HashRing`), as Horde uses it: 128 points per node at
  `:erlang.phash2({node, i}, 4294967295)` for `i` in `1..128`, the first node added keeping a
  point two nodes share, and a key owned by the node of the smallest point at or after
  `:erlang.phash2(key, 4294967295)`, wrapping around. The replicas build the same ring in C
  (`c_src/supervisor/`); this one lets a BEAM node compute placement too.
  """

  @weight 128
  @range 4_294_967_295

  @typedoc "A ring: a `:gb_trees` of point => node."
  @opaque t :: :gb_trees.tree(non_neg_integer(), term())

  @doc "A ring of `nodes`, added in the order given."
  @spec new([term()]) :: t()
  def new(nodes) do
    Enum.reduce(Enum.uniq(nodes), :gb_trees.empty(), fn node, tree ->
      Enum.reduce(1..@weight, tree, fn i, tree ->
        point = :erlang.phash2({node, i}, @range)
        if :gb_trees.is_defined(point, tree), do: tree, else: :gb_trees.insert(point, node, tree)
      end)
    end)
  end

  @doc "The node owning `key` (an atom key is hashed as its external term format, as libring does)."
  @spec key_to_node(t(), term()) :: {:ok, term()} | {:error, {:invalid_ring, :no_nodes}}
  def key_to_node(tree, key) do
    if :gb_trees.is_empty(tree) do
      {:error, {:invalid_ring, :no_nodes}}
    else
      key = if is_atom(key), do: :erlang.term_to_binary(key), else: key
      h = :erlang.phash2(key, @range)

      case :gb_trees.next(:gb_trees.iterator_from(h, tree)) do
        {_point, node, _} -> {:ok, node}
        :none -> {:ok, tree |> :gb_trees.smallest() |> elem(1)}
      end
    end
  end

  @doc """
  The first node clockwise from `key`'s position for which `accept?` is true (libring's
  `key_to_nodes/3` walk, restricted): `{:ok, node}`, `{:error, :none}` when no node is accepted,
  or `{:error, {:invalid_ring, :no_nodes}}`.
  """
  @spec key_to_node(t(), term(), (term() -> boolean())) ::
          {:ok, term()} | {:error, :none | {:invalid_ring, :no_nodes}}
  def key_to_node(tree, key, accept?) do
    if :gb_trees.is_empty(tree) do
      {:error, {:invalid_ring, :no_nodes}}
    else
      key = if is_atom(key), do: :erlang.term_to_binary(key), else: key
      h = :erlang.phash2(key, @range)
      {before, from} = tree |> :gb_trees.to_list() |> Enum.split_while(fn {p, _} -> p < h end)

      case Enum.find(from ++ before, fn {_, node} -> accept?.(node) end) do
        {_, node} -> {:ok, node}
        nil -> {:error, :none}
      end
    end
  end

  @doc "The points of the ring, smallest first: `[{point, node}]`."
  @spec points(t()) :: [{non_neg_integer(), term()}]
  def points(tree), do: :gb_trees.to_list(tree)
end

defmodule HordeC.UniformDistribution do
  @moduledoc """
  The default placement: libring's consistent hash ring (`HordeC.HashRing`) over the alive
  members, keyed by the child spec's placement identifier (`:erlang.phash2` of the spec without
  its `:id`), exactly as `Horde.UniformDistribution`. Always has quorum: under a partition both
  sides keep running children (docs/supervisor.md §5).
  """
  @behaviour HordeC.DistributionStrategy

  alias HordeC.{DistributionStrategy, HashRing}

  @impl true
  def choose_node(spec, members) do
    case DistributionStrategy.alive(members) do
      [] ->
        {:error, :no_alive_nodes}

      alive ->
        by_name = Map.new(alive, &{&1.name, &1})
        ring = HashRing.new(Enum.map(alive, & &1.name))
        {:ok, name} = HashRing.key_to_node(ring, DistributionStrategy.identifier(spec))
        {:ok, Map.fetch!(by_name, name)}
    end
  end

  @impl true
  def has_quorum?(_members), do: true

  @impl true
  def wire_name, do: :uniform
end

defmodule HordeC.UniformQuorumDistribution do
  @moduledoc """
  `HordeC.UniformDistribution`'s placement, only while the members have quorum
  (`Horde.UniformQuorumDistribution`'s rule): among the members not shutting down, sorted by
  name, an even count drops the first; more than half of the rest must be alive (members without
  a status yet, and dead ones, count against it). Without quorum a replica refuses new children
  (`{:error, :quorum_not_met}`) and stops the children running through it; the majority side
  takes them over (docs/supervisor.md §3).
  """
  @behaviour HordeC.DistributionStrategy

  @impl true
  def choose_node(spec, members) do
    if has_quorum?(members),
      do: HordeC.UniformDistribution.choose_node(spec, members),
      else: {:error, :quorum_not_met}
  end

  @impl true
  def has_quorum?([]), do: false

  def has_quorum?(members) do
    active =
      members
      |> Enum.reject(&(&1.status == :shutting_down))
      |> Enum.sort_by(& &1.name)

    active = if rem(length(active), 2) == 0, do: Enum.drop(active, 1), else: active

    case active do
      [] -> false
      _ -> Enum.count(active, &(&1.status == :alive)) / length(active) > 0.5
    end
  end

  @impl true
  def wire_name, do: :quorum
end

defmodule HordeC.UniformRandomDistribution do
  @moduledoc """
  A uniformly random alive member (`Horde.UniformRandomDistribution`). The replica placing a
  child draws once: there is no proxying between members, so no hop count to bound.
  """
  @behaviour HordeC.DistributionStrategy

  @impl true
  def choose_node(_spec, members) do
    case HordeC.DistributionStrategy.alive(members) do
      [] -> {:error, :no_alive_nodes}
      alive -> {:ok, Enum.random(alive)}
    end
  end

  @impl true
  def has_quorum?(_members), do: true

  @impl true
  def wire_name, do: :random
end
