{# bioconv: derived from Brian2's cpp_standalone/templates/synapses.cpp (UPSTREAM.toml). Changed: with the
   preference devices.bioconv_standalone.direct_propagation (and no OpenMP), when the pathway's delays
   are all zero (checked at run time, once the binary has loaded them) its events are applied straight
   from the source's spike space and each spiking source's synapse list, in the order the queue would
   hand them on, instead of being copied through the spike queue; otherwise Brian2's loop runs. Every
   code object of this template applies the same condition as synapses_push_spikes.cpp, so a queue is
   only bypassed when all of its readers bypass it. #}
{% extends 'common_synapses.cpp' %}

{% set _non_synaptic = [] %}
{% for var in variables %}
    {% if variable_indices[var] not in ('_idx', '0') %}
        {# This is a trick to get around the scoping problem #}
        {% if _non_synaptic.append(1) %}{% endif %}
    {% endif %}
{% endfor %}

{% block maincode %}

    // This is only needed for the _debugmsg function below
    {# USES_VARIABLES { _synaptic_pre } #}

    // scalar code
    const size_t _vectorisation_idx = -1;
    {{scalar_code|autoindent}}

    {% if bioconv_direct_propagation(pathway) %}
    {% set _space = pathway.source.variables['_' + pathway.event + 'space'] %}
    {% set _queue = pathway.name + '.queue[0]' %}
    if {{bioconv_direct_condition(pathway.name)}}
    {
        // bioconv: zero delay, events straight from the source's spikes (direct_propagation)
        const int32_t * const _source_spikes = {{get_array_name(_space, access_data=False)}};
        const int32_t _n_source_spikes = _source_spikes[{{_space.size - 1}}];
        for(int32_t _k=0; _k<_n_source_spikes; _k++)
        {
            const int32_t _source = _source_spikes[_k];
            if(_source < {{_queue}}->source_start || _source >= {{_queue}}->source_end) continue;
            const std::vector<int> &_synapses = {{_queue}}->synapses[_source - {{_queue}}->source_start];
            const size_t _n_synapses = _synapses.size();
            if(_n_synapses == 0) continue;
            if((size_t)(_synapses[_n_synapses-1] - _synapses[0]) == _n_synapses-1)
            {
                // one contiguous range (the list is increasing): no index to load per event
                const size_t _first = _synapses[0];
                for(size_t _idx=_first; _idx<_first+_n_synapses; _idx++)
                {
                    const size_t _vectorisation_idx = _idx;
                    {{vector_code|autoindent}}
                }
            }
            else
            {
                for(size_t _j=0; _j<_n_synapses; _j++)
                {
                    const size_t _idx = _synapses[_j];
                    const size_t _vectorisation_idx = _idx;
                    {{vector_code|autoindent}}
                }
            }
        }
    }
    else
    {% endif %}
    {{ openmp_pragma('parallel') }}
    {
    std::vector<int> *_spiking_synapses = {{pathway.name}}.peek();
    const int _num_spiking_synapses = _spiking_synapses->size();

    {% if _non_synaptic %}
    {{ openmp_pragma('master') }}
    {
        for(int _spiking_synapse_idx=0;
            _spiking_synapse_idx<_num_spiking_synapses;
            _spiking_synapse_idx++)
        {
            const size_t _idx = (*_spiking_synapses)[_spiking_synapse_idx];
            const size_t _vectorisation_idx = _idx;
            {{vector_code|autoindent}}
        }
    }
    {% else %}
    {{ openmp_pragma('static') }}
    for(int _spiking_synapse_idx=0;
        _spiking_synapse_idx<_num_spiking_synapses;
        _spiking_synapse_idx++)
    {
        const size_t _idx = (*_spiking_synapses)[_spiking_synapse_idx];
        const size_t _vectorisation_idx = _idx;
        {{vector_code|autoindent}}
    }

    {% endif %}
    }
{% endblock %}


{% block extra_functions_cpp %}
void _debugmsg_{{codeobj_name}}()
{
    using namespace brian;
    std::cout << "Number of synapses: " << {{_dynamic__synaptic_pre}}.size() << endl;
}
{% endblock %}

{% block extra_functions_h %}
void _debugmsg_{{codeobj_name}}();
{% endblock %}

{% macro main_finalise() -%}
#ifdef DEBUG
_debugmsg_{{codeobj_name}}();
#endif
{% endmacro %}
